// Command serveload sends N parallel inference requests to a move serve process (a model of
// 32x32 images) and reports the server's resident memory (VmRSS, VmHWM from /proc) during and
// after, and whether it still answers: the check of issue 16, item 3.
//
//	serveload URL PID N IMAGES   (1,350 images make a request of about 50 MB)
package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rss(pid string) string {
	b, _ := os.ReadFile("/proc/" + pid + "/status")
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") {
			out = append(out, strings.Join(strings.Fields(l), " "))
		}
	}
	return strings.Join(out, ", ")
}

func main() {
	if len(os.Args) != 5 {
		fmt.Fprintln(os.Stderr, "usage: serveload http://HOST:PORT/v2/models/NAME/infer PID N IMAGES")
		os.Exit(2)
	}
	url, pid := os.Args[1], os.Args[2]
	n, _ := strconv.Atoi(os.Args[3])
	imgs, _ := strconv.Atoi(os.Args[4])
	var body bytes.Buffer
	body.WriteString(`{"inputs":[{"name":"images","shape":[` + strconv.Itoa(imgs) + `,32,32,3],"datatype":"FP32","data":[`)
	for i := range imgs * 32 * 32 * 3 {
		if i > 0 {
			body.WriteByte(',')
		}
		body.WriteString("0.123456789")
	}
	body.WriteString(`]}]}`)
	fmt.Printf("%d parallel requests of %.1f MB each\n", n, float64(body.Len())/1e6)
	var wg sync.WaitGroup
	codes := make([]int, n)
	start := time.Now()
	stop := make(chan bool)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Second):
				fmt.Printf("  %5.1fs  %s\n", time.Since(start).Seconds(), rss(pid))
			}
		}
	}()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := http.Post(url, "application/json", bytes.NewReader(body.Bytes()))
			if err != nil {
				codes[i] = -1
				return
			}
			r.Body.Close()
			codes[i] = r.StatusCode
		}()
	}
	wg.Wait()
	close(stop)
	ok := 0
	for _, c := range codes {
		if c == 200 {
			ok++
		}
	}
	fmt.Printf("answered %d of %d with 200 in %.1fs; right after: %s\n", ok, n, time.Since(start).Seconds(), rss(pid))
	time.Sleep(3 * time.Second)
	r, err := http.Get(strings.Replace(url, "/infer", "/ready", 1))
	fmt.Printf("3 s later: %s; ready: %v %v\n", rss(pid), err, r.StatusCode)
}
