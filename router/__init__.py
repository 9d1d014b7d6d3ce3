"""The strangler router: a reverse proxy (asyncio + httptools on uvloop, no Django) that sends
each endpoint to the monolith or a service, with canaries, shadows, fallback and live config
flips.
"""
