"""What a run is told before it starts: images.toml, the settings over it, their validation.

`model` holds the configuration as frozen values and `loader` reads images.toml into them;
`settings` declares every setting once, `precedence` resolves each (flag > AIBASE_* > file >
default) into `resolved.Settings`, one typed attribute per setting, kept with its source;
`validate` holds the field validators, whose errors name the file or flag and the key;
`paths` is the output layout the settings point at. No I/O beyond reading images.toml.

May import: errors, registry (the one image-reference parser; trust's CA checks).
"""
