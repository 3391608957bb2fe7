"""The admin API (``/admin/api/...``) and the admin page (``/admin``), behind ``ADMIN_KEY``."""

from gptrelay.admin.api import api_routes
from gptrelay.admin.page import admin_page
from gptrelay.door import Route


def admin_routes() -> tuple[Route, ...]:
    """The admin page's and API's routes, for the app's table (public at the door: each checks ADMIN_KEY)."""
    return (*api_routes(), Route("/admin", ("GET", "HEAD"), admin_page, public=True))


__all__ = ["admin_routes", "api_routes"]
