# frozen_string_literal: true

module Reactis
  # The gem's version; the C core inside it reports its own with
  # Reactis.core_version (they move together).
  VERSION = "0.1.0"
end
