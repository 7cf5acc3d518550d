"""Downward commands (工作指令/交办事项): issued down the down streams, answered (签收, 办结) up."""
