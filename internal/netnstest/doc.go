// Package netnstest pulls the cable for real, for tests of silent peers
// (no FIN, no RST), which only the kernel's keepalive and
// TCP_USER_TIMEOUT, or a protocol's heartbeat, can notice.
//
// Setup makes two network namespaces joined by a veth pair, 192.0.2.1
// (server) and 192.0.2.2 (client), in 192.0.2.0/24 (TEST-NET-1, RFC 5737,
// used only inside the namespaces); Listen and Dial there with In; Drop
// installs an nftables rule in the client's namespace that drops every
// packet in and out, so its kernel sends neither ACK nor RST. It needs
// root, ip (iproute2) and nft (nftables); Setup skips the test otherwise.
// The namespaces are deleted when the test ends.
package netnstest
