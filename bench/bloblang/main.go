// Command bloblang runs bench/reshape_lua.sh's JSON reshape as a Bloblang mapping (Benthos's
// public service API, as its mapping processor runs it: parse the message as JSON, map,
// serialise) over a file of JSON lines held in memory, on one goroutine, and prints
// records/s per run. Run it with GOMAXPROCS=1 for one core.
//
//	bloblang [-runs 3] EVENTS.jsonl
//
// Output: one line per run, then "RESULT <variant> <median rec/s> <min> <max> <cpu s per
// 1M records, median>" per variant (passthrough: messages made and read back, no mapping).
package main

import (
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/redpanda-data/benthos/v4/public/bloblang"
	"github.com/redpanda-data/benthos/v4/public/service"
)

// The reshape: compute one field, rename one, drop a nested one.
const mapping = `root = this
root.total = this.price * this.qty
root.b = this.a
root.a = deleted()
root.meta.debug = deleted()
`

func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// run maps every line once; returns wall and CPU seconds and the output bytes.
func run(lines [][]byte, exe *bloblang.Executor) (float64, float64, int, error) {
	c0 := cpuSeconds()
	t0 := time.Now()
	total := 0
	for _, l := range lines {
		msg := service.NewMessage(l)
		if exe != nil {
			res, err := msg.BloblangQuery(exe)
			if err != nil {
				return 0, 0, 0, err
			}
			msg = res
		}
		b, err := msg.AsBytes()
		if err != nil {
			return 0, 0, 0, err
		}
		total += len(b)
	}
	return time.Since(t0).Seconds(), cpuSeconds() - c0, total, nil
}

func main() {
	runs := flag.Int("runs", 3, "runs per variant")
	show := flag.Bool("show", false, "print the first output record and exit")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: bloblang [-runs N] [-show] EVENTS.jsonl")
		os.Exit(2)
	}
	data, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var lines [][]byte
	for _, l := range strings.Split(strings.TrimRight(string(data), "\n"), "\n") {
		lines = append(lines, []byte(l))
	}
	exe, err := bloblang.Parse(mapping)
	if err != nil {
		fmt.Fprintln(os.Stderr, "mapping:", err)
		os.Exit(1)
	}
	if *show {
		res, err := service.NewMessage(lines[0]).BloblangQuery(exe)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		b, _ := res.AsBytes()
		fmt.Println(string(b))
		return
	}
	variants := []struct {
		name string
		exe  *bloblang.Executor
	}{{"passthrough", nil}, {"bloblang", exe}}
	rates := make([][]float64, len(variants))
	cpus := make([][]float64, len(variants))
	for r := 0; r < *runs; r++ {
		for v, vr := range variants {
			wall, cpu, bytes, err := run(lines, vr.exe)
			if err != nil {
				fmt.Fprintln(os.Stderr, vr.name+":", err)
				os.Exit(1)
			}
			rate := float64(len(lines)) / wall
			rates[v] = append(rates[v], rate)
			cpus[v] = append(cpus[v], cpu/float64(len(lines))*1e6)
			fmt.Printf("%-12s run %d: %d records in %.3f s (cpu %.3f s): %.0f records/s, %d bytes out\n",
				vr.name, r+1, len(lines), wall, cpu, rate, bytes)
		}
	}
	for v, vr := range variants {
		sort.Float64s(rates[v])
		sort.Float64s(cpus[v])
		n := len(rates[v])
		fmt.Printf("RESULT %s %.0f %.0f %.0f %.3f\n", vr.name, rates[v][n/2], rates[v][0],
			rates[v][n-1], cpus[v][n/2])
	}
}
