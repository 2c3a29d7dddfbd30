"""Progress-line helpers shared by training, sampling and the study."""


def format_duration(seconds: float) -> str:
  """`12m05s`, or `1h02m03s` from an hour on (ETAs in progress lines)."""
  seconds = int(round(seconds))
  if seconds >= 3600:
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m{seconds % 60:02d}s"
  return f"{seconds // 60}m{seconds % 60:02d}s"
