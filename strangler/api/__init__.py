"""The HTTP contract every deployable shares: error shape, pagination, DRF settings.

The monolith and the extracted services use this one module so that the router can send a
request to either and a client cannot tell which answered.
"""
