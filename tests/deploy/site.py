"""deploy/nginx/gptrelay.conf, rendered for a test: the strings its header names as the ones to
change (ports, server name, certificate and webroot paths) are replaced, and nothing else."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.helpers import free_port, wait_until_serving
from tests.readme import ROOT

SITE = ROOT / "deploy" / "nginx" / "gptrelay.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def render(site: str, replacements: dict[str, str]) -> str:
    """``site`` with each key replaced by its value; every key must occur (a renamed line fails here,
    not as a test that quietly runs another configuration)."""
    for old, new in replacements.items():
        assert old in site, f"{SITE.name} no longer contains {old!r}"
        site = site.replace(old, new)
    return site


def main_conf(folder: Path, include: Path) -> str:
    """An nginx.conf as a distribution's is (one worker here), with gzip on for every type, so that the
    site's own ``gzip off`` is what keeps streams whole; every file nginx writes goes in ``folder``."""
    return f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/error.log info;
events {{ worker_connections 512; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    default_type application/octet-stream;
    gzip on;
    gzip_types *;
    gzip_min_length 1;
    gzip_proxied any;
    include {include};
}}
"""


@dataclass
class Front:
    """nginx running the shipped site: ``https`` (TLS, HTTP/1.1 and HTTP/2) and ``http`` (port 80's
    server) on 127.0.0.1, trusting ``ca`` (a PEM file)."""

    process: subprocess.Popen[bytes]
    https: str
    http: str
    ca: Path
    webroot: Path
    folder: Path

    @property
    def error_log(self) -> str:
        return (self.folder / "error.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        shutil.rmtree(self.webroot, ignore_errors=True)


def start_front(folder: Path, relays: list[str]) -> Front:
    """Real nginx with the shipped site in front of the two relays ``relays`` (``host:port``), its TLS
    server on a certificate for ``localhost`` from a test CA."""
    import trustme

    assert NGINX is not None
    assert len(relays) == 2
    ca = trustme.CA()
    certificate = ca.issue_cert("localhost", "127.0.0.1")
    certificate.cert_chain_pems[0].write_to_path(str(folder / "fullchain.pem"))
    for blob in certificate.cert_chain_pems[1:]:
        blob.write_to_path(str(folder / "fullchain.pem"), append=True)
    certificate.private_key_pem.write_to_path(str(folder / "privkey.pem"))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    # nginx's workers (user nobody) read the webroot, so it cannot be under pytest's private tmp_path.
    webroot = Path(tempfile.mkdtemp(prefix="gptrelay-acme-"))
    webroot.chmod(0o755)
    tls, plain = free_port(), free_port()
    site = render(SITE.read_text(), {
        "/etc/letsencrypt/live/relay.example.com/fullchain.pem": str(folder / "fullchain.pem"),
        "/etc/letsencrypt/live/relay.example.com/privkey.pem": str(folder / "privkey.pem"),
        "relay.example.com": "localhost",
        "127.0.0.1:3666": relays[0],
        "127.0.0.1:3667": relays[1],
        "listen 443 ssl http2;": f"listen 127.0.0.1:{tls} ssl http2;",
        "listen [::]:443 ssl http2;": f"listen [::1]:{tls} ssl http2;",
        "listen 80;": f"listen 127.0.0.1:{plain};",
        "listen [::]:80;": f"listen [::1]:{plain};",
        "/var/www/letsencrypt": str(webroot),
    })
    (folder / "site.conf").write_text(site)
    (folder / "nginx.conf").write_text(main_conf(folder, folder / "site.conf"))
    checked = subprocess.run([NGINX, "-t", "-p", str(folder), "-c", str(folder / "nginx.conf")],
                             capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stderr
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                               stderr=subprocess.DEVNULL)
    front = Front(process, f"https://localhost:{tls}", f"http://127.0.0.1:{plain}", folder / "ca.pem", webroot,
                  folder)
    wait_until_serving(front.http, process)  # port 80's server answers /healthz with its redirect
    return front
