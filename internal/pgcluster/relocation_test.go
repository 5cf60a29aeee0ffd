package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
)

// As root the cluster runs as the postgres user. When that user cannot
// enter the data folder's parent (a 0700 temporary folder is enough), Start
// refuses, names the folder and the permission to fix, and creates nothing
// elsewhere: the data stays where the operator put it.
func TestStartRefusesToRelocateSilently(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("relocation only concerns chatpay running as root")
	}
	if _, err := user.Lookup(unprivilegedUser); err != nil {
		t.Skip("no postgres user on this machine")
	}
	if _, err := FindBinaries(""); err != nil {
		t.Skip(err)
	}
	parent := filepath.Dir(t.TempDir()) // t.TempDir makes its folders 0700
	dir := filepath.Join(parent, "data", "postgres")
	sum := sha256.Sum256([]byte(dir))
	relocated := filepath.Join(relocationRoot, "pg-"+hex.EncodeToString(sum[:8]))

	_, err := Start(context.Background(), Options{Dir: dir})
	if err == nil {
		t.Fatal("Start succeeded on a data folder the postgres user cannot enter")
	}
	for _, want := range []string{"cannot enter " + parent, "chmod o+x " + parent, "--data-dir", "--pg-allow-relocation"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q: %v", want, err)
		}
	}
	if _, statErr := os.Lstat(relocated); !errors.Is(statErr, fs.ErrNotExist) {
		t.Errorf("%s was created: %v", relocated, statErr)
	}
	if _, statErr := os.Lstat(dir); !errors.Is(statErr, fs.ErrNotExist) {
		if info, _ := os.Lstat(dir); info != nil && info.Mode()&fs.ModeSymlink != 0 {
			t.Errorf("%s is a link to elsewhere", dir)
		}
	}
}
