"""Azure OpenAI: deployment URLs, api-version and the api-key header; other paths a clear 404."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from tests.conftest import RunningRelay
from tests.helpers import assert_well_formed, chat, user
from tests.upstream.conftest import Fakes

Pooled = Callable[..., RunningRelay]
AZURE_KEY = "0123456789abcdef0123456789abcdef"


def azure(url: str) -> str:
    return (f'[[upstreams]]\nname = "azure-east"\nkind = "azure"\nbase_url = "{url.removesuffix("/v1")}"\n'
            f'api_version = "2024-10-21"\nkeys = ["{AZURE_KEY}"]\n'
            'deployments = { "gpt-4o" = "gpt4o-prod", "gpt-4o-mini" = "mini-prod" }\n')


@pytest.mark.parametrize("route", ["/chat", "/chatgpt", "/v1/chat/completions"])
def test_azure_is_asked_at_its_deployment_url(fakes: Fakes, pooled: Pooled, route: str) -> None:
    fake = fakes(api_key=AZURE_KEY)
    relay = pooled(azure(fake.url))
    body = {"model": "gpt-4o", "stream": True, **user("hello")}
    with httpx.stream("POST", relay.url + route, json=body, headers=relay.auth, timeout=20) as r:
        assert r.status_code == 200
        text = r.read()
    assert text.endswith(b'"content":"[DONE]","finish_reason":"stop"}\n' if route == "/chat" else b"data: [DONE]\n\n")
    (record,) = fake.fake.log
    assert record.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert record.query == "api-version=2024-10-21"
    assert record.headers["api-key"] == AZURE_KEY and "Authorization" not in record.headers


def test_a_model_without_a_deployment_is_its_own_deployment(fakes: Fakes, pooled: Pooled) -> None:
    fake = fakes()
    relay = pooled(azure(fake.url).replace('deployments = { "gpt-4o" = "gpt4o-prod", "gpt-4o-mini" = "mini-prod" }\n',
                                          ""))
    assert_well_formed(chat(relay.url, {"model": "gpt-4.1", **user("hi")}, relay.auth))
    assert fake.fake.log[0].path == "/openai/deployments/gpt-4.1/chat/completions"


def test_other_paths_are_a_clear_404(fakes: Fakes, pooled: Pooled) -> None:
    fake = fakes()
    relay = pooled(azure(fake.url))
    r = httpx.post(f"{relay.url}/v1/embeddings", json={"model": "gpt-4o", "input": "x"}, headers=relay.auth)
    assert r.status_code == 404
    assert r.json()["error"]["message"].startswith("Azure OpenAI does not offer /v1/embeddings through this relay")
    assert httpx.get(f"{relay.url}/v1/models", headers=relay.auth).status_code == 404
    assert fake.fake.log == []


def test_azure_beside_openai(fakes: Fakes, pooled: Pooled) -> None:
    """Chat goes to Azure for its models; a path Azure lacks goes to the OpenAI upstream."""
    azure_fake, openai_fake = fakes(), fakes()
    relay = pooled(azure(azure_fake.url) + f'[[upstreams]]\nname = "openai"\nbase_url = "{openai_fake.url}"\n'
                   'keys = ["sk-openai-0123456789-wxyz"]\nmodels = ["gpt-4.1*", "text-embedding-*"]\n')
    assert_well_formed(chat(relay.url, {"model": "gpt-4o-mini", **user("hi")}, relay.auth))
    assert_well_formed(chat(relay.url, {"model": "gpt-4.1", **user("hi")}, relay.auth))
    r = httpx.get(f"{relay.url}/v1/models", headers=relay.auth)  # no model: the first that offers it
    assert r.status_code == 200
    assert [record.path for record in azure_fake.fake.log] == ["/openai/deployments/mini-prod/chat/completions"]
    assert [record.path for record in openai_fake.fake.log] == ["/v1/chat/completions", "/v1/models"]
