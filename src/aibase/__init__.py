"""ai-base: build, tag, push and verify the multi-arch AI base images."""
