"""Users and identities (users), and the API tokens `aipilot serve` accepts (tokens)."""
