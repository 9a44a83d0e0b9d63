// Package mesh holds The Mesh's domain: the types clients see on the wire, the error codes
// of the contract, the names of bus streams and subjects, and the payloads services exchange
// over the bus. It imports only the standard library; every other package of ours may import it.
package mesh
