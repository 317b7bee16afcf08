package daemon

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/xkeep/xkeep/config"
	"github.com/xkeep/xkeep/internal/health"
)

func healthOf(t *testing.T, src string) (health.Config, []string, error) {
	t.Helper()
	cfg, _, err := config.Parse("keepalived.conf", []byte(src), config.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return HealthConfig(cfg, os.ReadFile)
}

func TestHealthConfigTranslatesEveryChecker(t *testing.T) {
	src := `
global_defs {
    script_user nobody
}
virtual_server 192.0.2.1 80 {
    delay_loop 3
    lb_kind DR
    protocol TCP
    quorum 2
    hysteresis 1
    quorum_up "/bin/up.sh a"
    omega
    sorry_server 10.0.0.9 8080
    sorry_server_inhibit
    real_server 10.0.0.1 80 {
        weight 2
        inhibit_on_failure
        notify_down "/bin/down.sh 'rs 1'"
        HTTP_GET {
            url {
                path /health
                digest 9b3a0c85a887a256d6939da88aabd8cd
                status_code 200-204
            }
            virtualhost www.example.org
            connect_port 8080
            connect_timeout 2
            retry 4
            delay_before_retry 1
        }
        MISC_CHECK {
            misc_path "/bin/check.sh 10.0.0.1"
            misc_timeout 5
            misc_dynamic
        }
    }
    real_server 10.0.0.2 80 {
        SMTP_CHECK {
            helo_name lb.example.org
            host {
                connect_ip 10.0.0.20
                connect_port 2525
            }
            host {
                connect_ip 10.0.0.21
            }
        }
        UDP_CHECK {
            connect_port 53
            require_reply 0a0bxx0c
        }
        DNS_CHECK {
            type A
            name example.org
        }
        PING_CHECK
        TCP_CHECK {
            alpha
            bindto 10.0.0.100
            bind_if eth1
            fwmark 3
        }
    }
}
`
	cfg, warns, err := healthOf(t, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(warns) != 0 {
		t.Errorf("warnings %q", warns)
	}
	vs := cfg.VirtualServers[0]
	if vs.Name != "TCP 192.0.2.1:80" || vs.Quorum != 2 || vs.Hysteresis != 1 || !vs.Omega ||
		!reflect.DeepEqual(vs.QuorumUp, health.Script{Args: []string{"/bin/up.sh", "a"}, User: "nobody"}) ||
		!reflect.DeepEqual(vs.Sorry, &health.SorryServer{Addr: netip.MustParseAddrPort("10.0.0.9:8080"), Inhibit: true}) {
		t.Errorf("virtual server %+v", vs)
	}
	rs1 := vs.RealServers[0]
	if rs1.Addr != netip.MustParseAddrPort("10.0.0.1:80") || rs1.Weight != 2 || !rs1.Inhibit ||
		!reflect.DeepEqual(rs1.NotifyDown.Args, []string{"/bin/down.sh", "rs 1"}) {
		t.Errorf("real server 1 %+v", rs1)
	}
	http := rs1.Checks[0]
	wantHTTP := health.HTTPCheck{
		URLs:        []health.URL{{Path: "/health", Digest: "9b3a0c85a887a256d6939da88aabd8cd", StatusCodes: []health.StatusRange{{Min: 200, Max: 204}}}},
		VirtualHost: "www.example.org", Protocol: health.HTTP10,
	}
	if !reflect.DeepEqual(http.Spec, wantHTTP) ||
		http.Timing != (health.Timing{DelayLoop: 3 * time.Second, Warmup: 3 * time.Second, Retry: 4, DelayBeforeRetry: time.Second, ConnectTimeout: 2 * time.Second}) ||
		http.Connect.IP != netip.MustParseAddr("10.0.0.1") || http.Connect.Port != 8080 {
		t.Errorf("HTTP_GET %+v", http)
	}
	misc := rs1.Checks[1]
	if !reflect.DeepEqual(misc.Spec, health.MiscCheck{Script: health.Script{Args: []string{"/bin/check.sh", "10.0.0.1"}, User: "nobody"}, Timeout: 5 * time.Second, Dynamic: true}) ||
		misc.Timing.Retry != 0 {
		t.Errorf("MISC_CHECK %+v", misc)
	}

	rs2 := vs.RealServers[1]
	var kinds []string
	for _, c := range rs2.Checks {
		kinds = append(kinds, c.Spec.Kind())
	}
	if want := "SMTP_CHECK SMTP_CHECK UDP_CHECK DNS_CHECK PING_CHECK TCP_CHECK"; strings.Join(kinds, " ") != want {
		t.Fatalf("checks %v, want %s (one SMTP_CHECK per host)", kinds, want)
	}
	if c := rs2.Checks[0]; c.Connect.IP != netip.MustParseAddr("10.0.0.20") || c.Connect.Port != 2525 || c.Spec.(health.SMTPCheck).HeloName != "lb.example.org" {
		t.Errorf("SMTP host 1 %+v", c)
	}
	if c := rs2.Checks[1]; c.Connect.IP != netip.MustParseAddr("10.0.0.21") || c.Connect.Port != 80 {
		t.Errorf("SMTP host 2 %+v", c.Connect)
	}
	if u := rs2.Checks[2].Spec.(health.UDPCheck); !u.RequireReply ||
		!reflect.DeepEqual(u.Reply, []byte{0x0a, 0x0b, 0x00, 0x0c}) || !reflect.DeepEqual(u.ReplyMask, []byte{0, 0, 0xff, 0}) {
		t.Errorf("UDP_CHECK %+v", u)
	}
	if d := rs2.Checks[3].Spec.(health.DNSCheck); d.Type != "A" || d.Name != "example.org" {
		t.Errorf("DNS_CHECK %+v", d)
	}
	if c := rs2.Checks[5]; !c.Alpha || c.Connect.BindTo != netip.MustParseAddr("10.0.0.100") || c.Connect.Interface != "eth1" || c.Connect.FWMark != 3 {
		t.Errorf("TCP_CHECK %+v", c)
	}
}

func TestHealthConfigLeavesOutUnimplementedCheckers(t *testing.T) {
	_, warns, err := healthOf(t, `virtual_server 192.0.2.1 80 {
    protocol TCP
    real_server 10.0.0.1 80 {
        FILE_CHECK {
            track_file f
        }
    }
    real_server 10.0.0.2 80 {
        BFD_CHECK {
            name b
        }
        TCP_CHECK {
        }
    }
}`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"keepalived.conf:3:5: real_server 10.0.0.1:80: FILE_CHECK not implemented and left out: it has no other checker, so it is always up",
		"keepalived.conf:8:5: real_server 10.0.0.2:80: BFD_CHECK not implemented and left out: it is judged by its other checkers",
	}
	if !reflect.DeepEqual(warns, want) {
		t.Errorf("warnings\n%q\nwant\n%q", warns, want)
	}
}

func TestHealthConfigErrorsHavePositions(t *testing.T) {
	_, _, err := healthOf(t, `virtual_server 192.0.2.1 80 {
    protocol TCP
    real_server 10.0.0.1 80 {
        HTTP_GET {
            url {
                path /
                regex "a(?=b)"
            }
        }
    }
}`)
	if err == nil || !strings.HasPrefix(err.Error(), "keepalived.conf:4:9: HTTP_GET: url /: regex \"a(?=b)\"") || !strings.Contains(err.Error(), "RE2") {
		t.Fatalf("error %v", err)
	}
}

func TestHealthConfigLoadsTheSSLBlock(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM := selfSigned(t)
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	block, _ := pem.Decode(keyPEM)
	//lint:ignore SA1019 the legacy encryption is what keepalived's password reads.
	enc, err := x509.EncryptPEMBlock(rand.Reader, block.Type, block.Bytes, []byte("s3cret"), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	ca, cert, key := write("ca.pem", certPEM), write("cert.pem", certPEM), write("key.pem", pem.EncodeToMemory(enc))
	src := `SSL {
    password s3cret
    ca ` + ca + `
    certificate ` + cert + `
    key ` + key + `
}
virtual_server 192.0.2.1 443 {
    protocol TCP
    real_server 10.0.0.1 443 {
        SSL_GET {
            url {
                path /
            }
            enable_sni
        }
    }
}`
	cfg, _, err := healthOf(t, src)
	if err != nil {
		t.Fatal(err)
	}
	spec := cfg.VirtualServers[0].RealServers[0].Checks[0].Spec.(health.HTTPCheck)
	if spec.TLS == nil || spec.TLS.RootCAs == nil || len(spec.TLS.Certificates) != 1 || !spec.TLS.EnableSNI || spec.TLS.Verify {
		t.Fatalf("TLS options %+v", spec.TLS)
	}

	// Legacy PEM decryption with a wrong password fails its padding check,
	// or (about 1 in 256) yields garbage the key parser then refuses.
	_, _, err = healthOf(t, strings.Replace(src, "password s3cret", "password wrong", 1))
	if err == nil || !strings.HasPrefix(err.Error(), "keepalived.conf:1:1: SSL: ") || !strings.Contains(err.Error(), key) {
		t.Fatalf("wrong password: %v", err)
	}
}

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "xkeep test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
