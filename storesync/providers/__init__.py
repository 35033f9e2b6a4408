"""Connectors to the external providers (Shopify, Klaviyo) and the figures they produce."""
