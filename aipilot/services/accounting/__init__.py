"""What calls cost and may still cost: the usage rows (calls), per-user and per-organisation
quotas and limits (quotas), and the `aipilot usage` report (usage_report).
"""
