"""The strangler router: an ASGI reverse proxy (uvicorn + aiohttp, no Django) that sends each
endpoint to the monolith or a service, with canaries, shadows, fallback and live config flips.
"""
