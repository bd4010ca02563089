"""The Celery entrypoint: the app, its tasks (thin wrappers), and write-back (the use case)."""
