"""An OpenAI-compatible HTTP server in front of a live cluster on the real engine (``ascbench serve``).

``cluster`` is the open-ended counterpart of ``ascendra.live.cluster.LiveCluster``: the same instance threads,
schedulers and router, but requests are added as they come and the instances run until the server stops.
``prompts`` maps text to token ids (the tiny model has no tokenizer), ``api`` is the HTTP surface (FastAPI), and
``server`` builds the engines and runs it with uvicorn. Needs the ``engine`` extra plus fastapi and uvicorn.
"""
