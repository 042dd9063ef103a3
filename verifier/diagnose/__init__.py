"""The diagnose stage: why a migration took as long as it did, and what each link would do.

Before migrating, `forecast` runs a pre-copy model per candidate link; after a run, `diagnose`
puts it in one of four classes (not-converging, cap-bound, link-bound, sender-bound) with the
numbers, and `findings` / `FIXES` turn that into a finding and its exact commands. Pure code:
job statistics and capture bins in, model values out.
"""

from verifier.diagnose.classify import cap_in_effect, diagnose, link_rate_bps, wire_rate
from verifier.diagnose.convergence import forecast, precopy, summary, usable_Bps
from verifier.diagnose.fixes import CODES, FIXES, findings
from verifier.diagnose.leg import diagnose_leg
from verifier.diagnose.links import candidate_links, forecast_plan

__all__ = [
    "CODES",
    "FIXES",
    "candidate_links",
    "cap_in_effect",
    "diagnose",
    "diagnose_leg",
    "findings",
    "forecast",
    "forecast_plan",
    "link_rate_bps",
    "precopy",
    "summary",
    "usable_Bps",
    "wire_rate",
]
