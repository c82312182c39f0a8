"""What a run is told before it starts: images.toml read into frozen values (`model`,
`loader`), every setting declared once and resolved flag > AIBASE_* > file > default
(`settings`), field validators whose errors name the file or flag and the key (`validate`),
and the output layout the settings point at (`paths`). No I/O beyond reading images.toml.

May import: errors, registry (the one image-reference parser; trust's CA checks).
"""
