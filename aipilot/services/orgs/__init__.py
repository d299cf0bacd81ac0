"""Organisations and their members (orgs), and the organisation's OpenAI connection with its
key, quota and audit log (org_openai).
"""
