"""The web routes, one module per concern: signing in, pages, actions, live fragments."""
