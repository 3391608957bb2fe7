"""Usage records: what each request used (``records``), written in batches that survive a dead
database (``writer``), read back for ``gptrelay usage`` (``queries``) and for quotas (``quotas``)."""
