"""Swarm services: the adapter a Swarm manager's services are read and updated through.

watchkeeper never swaps a service's tasks itself: it asks Swarm for one service update that
changes only the image, and Swarm's own rolling update (its ``UpdateConfig``) does the work on
every node (README, "Swarm").
"""
