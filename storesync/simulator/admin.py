"""The ``/_sim`` control routes: stores, configuration, the request log, truth and limits.

- ``GET /_sim/stores``: the stores with their credentials, and the base URLs to use.
- ``GET /_sim/config``, ``POST /_sim/config`` (a partial config, merged; see
  :meth:`SimulatorConfig.patched`).
- ``GET /_sim/requests`` (filters: provider, account, endpoint, operation, status, fault,
  throttled, since, limit), ``DELETE /_sim/requests``.
- ``GET /_sim/truth/{shop}?start=YYYY-MM-DD&end=YYYY-MM-DD``: the oracle's figures.
- ``GET /_sim/limits``; ``POST /_sim/buckets/{shop}/drain?points=N`` (default: everything);
  ``POST /_sim/klaviyo/{account_id}/spend?group=reports&count=N`` (another integration's
  calls, counted in every window of that group).
- ``POST /_sim/reset``: forget limits, bulk operations and the log.
- ``GET /_sim/health``.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storesync.errors import InputError
from storesync.periods import Period, parse_date

if TYPE_CHECKING:
    from storesync.simulator.app import Simulator


def admin_routes(sim: Simulator) -> list[Route]:
    """The control routes of ``sim``."""

    def base(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def health(_request: Request) -> Response:
        return JSONResponse({"ok": True, "stores": len(sim.stores)})

    async def stores(request: Request) -> Response:
        root = base(request)
        return JSONResponse(
            {
                "shopify_base_url": f"{root}/shops/{{shop}}",
                "klaviyo_base_url": root,
                "stores": [s.to_json() for s in sim.stores],
            }
        )

    async def get_config(_request: Request) -> Response:
        return JSONResponse(sim.config.to_json())

    async def post_config(request: Request) -> Response:
        try:
            patch = json.loads(await request.body() or b"{}")
            if not isinstance(patch, dict):
                raise ValueError("the configuration must be a JSON object")
            config = sim.configure(patch)
        except (ValueError, TypeError) as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(config.to_json())

    async def get_requests(request: Request) -> Response:
        try:
            records = sim.requests.query(dict(request.query_params))
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse({"requests": [r.to_json() for r in records]})

    async def delete_requests(_request: Request) -> Response:
        cleared = len(sim.requests)
        sim.requests.clear()
        return JSONResponse({"cleared": cleared})

    async def truth(request: Request) -> Response:
        shop = request.path_params["shop"]
        if sim.find_store(shop) is None:
            return JSONResponse({"error": f"no simulated store {shop!r}"}, status_code=404)
        try:
            start = parse_date(request.query_params.get("start", ""), name="start")
            end = parse_date(request.query_params.get("end", ""), name="end")
            period = Period.checked(start, end)
        except InputError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        return JSONResponse(
            {
                "shopify": sim.shopify_truth(shop, period).to_json(),
                "klaviyo": sim.klaviyo_truth(shop, period).to_json(),
            }
        )

    async def limits(_request: Request) -> Response:
        return JSONResponse(sim.limits())

    async def drain(request: Request) -> Response:
        shop = request.path_params["shop"]
        if sim.find_store(shop) is None:
            return JSONResponse({"error": f"no simulated store {shop!r}"}, status_code=404)
        points = request.query_params.get("points")
        return JSONResponse(sim.drain_bucket(shop, float(points) if points else None))

    async def spend(request: Request) -> Response:
        group = request.query_params.get("group", "reports")
        try:
            count = int(request.query_params.get("count", "1"))
            used = sim.spend_klaviyo(request.path_params["account"], group, count)
        except (ValueError, AttributeError):
            return JSONResponse({"error": f"bad group {group!r} or count"}, status_code=400)
        return JSONResponse(used)

    async def reset(_request: Request) -> Response:
        sim.reset()
        return JSONResponse({"ok": True})

    return [
        Route("/_sim/health", health, methods=["GET"]),
        Route("/_sim/stores", stores, methods=["GET"]),
        Route("/_sim/config", get_config, methods=["GET"]),
        Route("/_sim/config", post_config, methods=["POST"]),
        Route("/_sim/requests", get_requests, methods=["GET"]),
        Route("/_sim/requests", delete_requests, methods=["DELETE"]),
        Route("/_sim/truth/{shop}", truth, methods=["GET"]),
        Route("/_sim/limits", limits, methods=["GET"]),
        Route("/_sim/buckets/{shop}/drain", drain, methods=["POST"]),
        Route("/_sim/klaviyo/{account}/spend", spend, methods=["POST"]),
        Route("/_sim/reset", reset, methods=["POST"]),
    ]
