"""Report incidents: post-mortem, follow-ups, HTML page, JSON API, ``pipemedic incidents``.

Everything here reads what the worker recorded; nothing here writes an incident.
"""
