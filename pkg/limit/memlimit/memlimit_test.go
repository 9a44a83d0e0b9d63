package memlimit_test

import (
	"testing"

	"github.com/themesh/mesh/pkg/limit"
	"github.com/themesh/mesh/pkg/limit/limittest"
	"github.com/themesh/mesh/pkg/limit/memlimit"
)

func TestConformance(t *testing.T) {
	limittest.Run(t, func(t *testing.T) limit.Counter { return memlimit.New() })
}
