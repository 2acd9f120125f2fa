"""Intake: ``POST /alerts`` authenticated, decoded, validated, persisted and acknowledged.

``auth`` checks Alertmanager's credentials, ``webhook``/``webhook_fast`` decode
and validate the body against ``webhook.schema.json``, ``handler`` runs the
stages and answers.
"""
