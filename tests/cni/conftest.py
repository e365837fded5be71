from tests.agent.harness import netns as netns
from tests.agent.harness import sock_dir as sock_dir
