package codec

import (
	"google.golang.org/protobuf/reflect/protoreflect"
)

// enumNames rewrites, in a decoded JSON document of message md, every enum
// given as a number into its name. Google's REST clients generated from
// the protos (cloud.google.com/go/...) send enums as numbers; the
// discovery-based types the engine decodes into hold names.
func enumNames(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok || md == nil {
		return v
	}
	for key, val := range obj {
		fd := md.Fields().ByJSONName(key)
		if fd == nil {
			fd = md.Fields().ByName(protoreflect.Name(key))
		}
		if fd == nil {
			continue
		}
		obj[key] = fieldNames(val, fd)
	}
	return obj
}

// fieldNames is enumNames for the value of field fd.
func fieldNames(v any, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsMap():
		m, ok := v.(map[string]any)
		if !ok {
			return v
		}
		for k, item := range m {
			m[k] = fieldNames(item, fd.MapValue())
		}
		return m
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			return v
		}
		for i, item := range list {
			list[i] = single(item, fd)
		}
		return list
	}
	return single(v, fd)
}

func single(v any, fd protoreflect.FieldDescriptor) any {
	switch fd.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		return enumNames(v, fd.Message())
	case protoreflect.EnumKind:
		if n, ok := v.(float64); ok {
			if ev := fd.Enum().Values().ByNumber(protoreflect.EnumNumber(n)); ev != nil {
				return string(ev.Name())
			}
		}
	}
	return v
}
