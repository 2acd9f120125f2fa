"""Incidents: the lifecycle (``lifecycle``) and the merge of concurrent timelines (``timeline``)."""
