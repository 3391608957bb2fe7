"""The admin API (``/admin/api/...``), behind ``ADMIN_KEY``; later its page."""

from gptrelay.admin.api import admin_routes

__all__ = ["admin_routes"]
