"""A user's configuration: the active model (activation), system prompts (prompts), the
configuration test (config_test), and the status views and history of the control centre
(views, overview).
"""
