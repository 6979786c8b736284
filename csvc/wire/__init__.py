"""
The contract between the control plane and its agents: the AMP commands
and their errors, the framing constants, how a responder's undeclared
error is answered (``responders.py``).  Both sides import it; it imports
nothing of csvc's.  The fast AMP codec is the fast path's
(``csvc.fastpath.boxes``).
"""
