"""The provider and model catalog: its reads (catalog), its admin writes (catalog_admin),
users' own models (custom_models), `aipilot models sync` (model_sync), and what a call costs
(pricing).
"""
