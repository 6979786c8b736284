"""
The contract between the control plane and its agents: the AMP commands
and their errors, the framing constants, the fast AMP codec and the socket
writer it uses.  Both sides import it; it imports nothing of csvc's.
"""
