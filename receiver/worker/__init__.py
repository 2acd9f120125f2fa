"""Work on acknowledged events: a bounded pool (``pool``), fair by pipeline (``fairqueue``).

The stages it runs after intake (diagnose, recover, check) are the seams of
``stages``; the incident they act on belongs to ``receiver.incidents``.
"""
