// Times Porcupine's own checker on its own test data, for bench/porcupine/run.sh.
// Copied into a Porcupine checkout (package porcupine) next to porcupine_test.go, whose
// parsers and models it uses. Each line: NAME SECONDS VERDICT.
package porcupine

import (
	"fmt"
	"testing"
	"time"
)

func TestDsimSideBySide(t *testing.T) {
	for _, name := range []string{"c01-ok", "c01-bad", "c10-ok", "c10-bad", "c50-ok", "c50-bad"} {
		events := parseKvLog(fmt.Sprintf("test_data/kv/%s.txt", name))
		started := time.Now()
		res := CheckEvents(kvModel, events)
		fmt.Printf("RESULT kv/%s.txt %.6f %t\n", name, time.Since(started).Seconds(), res)
	}
	total := 0.0
	for i := 0; i <= 102; i++ {
		if i == 95 {
			continue // empty: its etcd cluster never started
		}
		events := parseJepsenLog(fmt.Sprintf("test_data/jepsen/etcd_%03d.log", i))
		started := time.Now()
		CheckEvents(etcdModel, events)
		total += time.Since(started).Seconds()
	}
	fmt.Printf("RESULT jepsen/etcd-all %.6f -\n", total)
}
