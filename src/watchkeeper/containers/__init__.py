"""The Docker adapter: engine calls, the replacement's create spec, and the safe swap.

``engine`` is the only place docker-py is used (errors translated, timeouts everywhere),
``recreate`` turns an inspect into the replacement's create request without I/O, ``order``
finds dependencies and plans groups (pure), ``ready`` is the health gate, ``moves`` names what
a swap moves, ``swap`` moves a group with rollback, ``recovery`` repairs swaps a crash
interrupted, ``hooks`` runs lifecycle commands, and ``pause`` is a test-only hook that stops a
swap at a named step.
"""
