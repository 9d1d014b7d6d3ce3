"""Code both extracted services share: settings blocks, API helpers and event bookkeeping."""
