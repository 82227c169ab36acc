// Command etcd is etcd's server, built from go.etcd.io/etcd/server/v3/etcdmain
// at the release pinned in go.mod.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
