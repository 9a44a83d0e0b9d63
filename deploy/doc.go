// Package deploy holds The Mesh's deployment files rather than code: the Dockerfile of
// meshd, the Kubernetes manifests (k8s/, with development Redis and MongoDB in k8s/dev/), and
// the checks on them and on the repository's docker-compose.yml. healthcheck/ is the small
// HTTP probe the image ships for container healthchecks.
//
// The tests read no cluster and run no container: they check the files statically, against
// meshd's own source (the settings table of cmd/meshd, its roles) and against each other (a
// Service selects Pods that exist, a probe's port is the one meshd listens on, a peer list
// names every replica).
package deploy
