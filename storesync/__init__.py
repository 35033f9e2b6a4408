"""storesync: a self-hosted cache and durable sync queue for Shopify and Klaviyo dashboards.

The package is laid out by concern:

- ``settings``   the one typed settings object, passed in everywhere
- ``errors``     the exception hierarchy (input, not found, retryable, permanent)
- ``storage``    SQLAlchemy models, engines, Alembic migrations, credential encryption
- ``queue``      the durable job queue: enqueue, claim, lease, complete, fail, cancel, prune
- ``providers``  the Shopify and Klaviyo connectors and the figures they produce
- ``simulator``  a local ASGI app that speaks both providers' wire formats
- ``cli``        the ``storesync`` command
"""

__version__ = "0.1.0"
