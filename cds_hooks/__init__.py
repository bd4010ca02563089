"""The HTTP edge: the CDS Hooks 2.0 service (Flask), the Subscription webhook, health and metrics."""
