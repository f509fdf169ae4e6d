"""One router per resource: scores, applications, decisions, webhooks, health."""
