"""Who may call what: API keys and roles, scopes, dashboard sessions, allowed origins."""
