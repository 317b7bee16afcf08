package daemon

import (
	"fmt"
	"strconv"
)

func fmtV(v any) string     { return fmt.Sprintf("%+v", v) }
func strconvI(i int) string { return strconv.Itoa(i) }
