"""The discrete-event runtime: a virtual clock driving instances (scheduler + KV blocks + cost model)."""
