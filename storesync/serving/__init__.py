"""What the HTTP API and the web pages share in one serving process, below both of them.

- :mod:`~storesync.serving.context`: :class:`~storesync.serving.context.AppContext`, the
  services of one running app (database, queue, stores, dashboards, settings, tokens, event
  streams, rate limits), built by the app's lifespan (:mod:`storesync.app`);
- :mod:`~storesync.serving.tokens`: bearer tokens, which account a request acts for;
- :mod:`~storesync.serving.throttle`: failed sign-ins and unknown tokens per client address;
- :mod:`~storesync.serving.ratelimit`: requests a minute per account;
- :mod:`~storesync.serving.streams`: the server-sent event streams and the hub that feeds them;
- :mod:`~storesync.serving.reads`: the dashboard's cache read (one SELECT).

:mod:`storesync.api` and :mod:`storesync.web` import these and never each other; the app that
serves both is assembled above them, in :mod:`storesync.app`.
"""
