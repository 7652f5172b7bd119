# frozen_string_literal: true

module Reactis
  # A key or channel name template such as "user:{user_id}:notifications",
  # compiled once by the C core (template.h):
  #
  #   t = Reactis::Template.new("user:{user_id}:notifications")
  #   t.match("user:42:notifications")  # => {user_id: "42"} (binary Strings)
  #   t.match("user:42:settings")       # => nil
  #   t.format(user_id: 42)             # => "user:42:notifications"
  #   t.glob                            # => "user:*:notifications"
  #
  # Syntax: literal bytes and {name} placeholders ([A-Za-z0-9_], not starting
  # with a digit); "{{" and "}}" are literal braces. Two placeholders may not
  # touch and a name may appear once. Every placeholder matches one or more
  # bytes; when the literal after it occurs more than once it takes the
  # shortest span that lets the whole name match ("{a}:{b}" on "x:y:z": a =
  # "x", b = "y:z"). A malformed template raises Reactis::InvalidArgumentError.
  class Template
    # The placeholder names (Symbols), the source text and the glob pattern
    # (for PSUBSCRIBE and SCAN MATCH).
    attr_reader :names, :source, :glob

    def initialize(template)
      template = template.source if template.is_a?(Template)
      @handle = Cimpl::Template.new(Internal.bytes(template, "template"))
      @names = Array.new(@handle.count) { |i| @handle.name(i).to_sym }.freeze
      @source = @handle.source.freeze
      @glob = @handle.glob.freeze
    end

    # The captures of name as a Hash of Symbol => binary String, or nil when
    # the name does not fit.
    def match(name)
      rc, caps = @handle.match(Internal.bytes(name, "name"), [@names.size, 1].max)
      return nil unless rc == Cimpl::OK
      @names.zip(caps).to_h
    end

    def match?(name)
      !match(name).nil?
    end
    alias === match?

    # The name for the values (Strings, Symbols or Integers) by keyword, as
    # a Hash, or positionally in placeholder order.
    def format(*args, **values)
      raise ArgumentError, "give the values by keyword or positionally, not both" if !args.empty? && !values.empty?
      if args.size == 1 && args.first.is_a?(Hash)
        values = args.first.transform_keys(&:to_sym)
        args = []
      end
      unless args.empty?
        raise ArgumentError, "#{@source} takes #{@names.size} values, #{args.size} given" if args.size != @names.size
        values = @names.zip(args).to_h
      end
      missing = @names.reject { |n| values.key?(n) }
      raise KeyError, "missing template value(s): #{missing.join(', ')}" unless missing.empty?
      extra = values.keys - @names
      raise ArgumentError, "unknown template value(s): #{extra.join(', ')}" unless extra.empty?
      argv = [""] + @names.map { |n| value_text(n, values[n]) }
      @handle.format(argv)
    end

    def ==(other)
      other.is_a?(Template) && other.source == @source
    end
    alias eql? ==

    def hash
      @source.hash
    end

    def to_s
      @source.dup.force_encoding(Encoding::UTF_8)
    end

    def inspect
      "#<Reactis::Template #{to_s.inspect}>"
    end

    private

    def value_text(name, value)
      case value
      when String then value
      when Symbol, Integer then value.to_s
      else raise TypeError, "template value #{name} must be a String, Symbol or Integer, not #{value.class}"
      end
    end
  end
end
