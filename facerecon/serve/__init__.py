"""``facerecon serve``: the main job behind an HTTP API (:mod:`facerecon.serve.app`), its uploads run as jobs by a
pool of worker processes (:mod:`facerecon.serve.jobs`). The optional extra ``facerecon[web]``.

This room may import everything but ``cli`` and ``train``; nothing imports it but the command line.
"""
