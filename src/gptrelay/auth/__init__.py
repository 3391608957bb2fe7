"""Who is calling: access keys."""
