"""``make soak``: a year of a county's cases, compressed into minutes, under chaos.

A county of 5 towns × 4 villages runs as real processes — one nats-server and one ``fengqiao
node`` per center — while the workload drives cases round the closed loop (with escalations,
三联 joint cases and 四必评 projects) and the chaos driver SIGKILLs node processes and
nats-servers and cuts links. At the end the checks compare every node's store and the
county's figures against what was driven and against a recompute from the raw events.
"""
