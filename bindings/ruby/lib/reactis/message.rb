# frozen_string_literal: true

module Reactis
  # One event from a Subscriber.
  #
  # kind is :message (SUBSCRIBE), :pmessage (PSUBSCRIBE), :smessage
  # (SSUBSCRIBE) or :gap. For a gap the subscriber reconnected and
  # resubscribed: messages published between gap_start and gap_end may have
  # been missed (pub/sub is at-most-once), so re-read whatever state you
  # derive from them. Strings are binary (ASCII-8BIT) unless the Subscriber
  # was made with encoding:.
  class Message
    KINDS = {
      Cimpl::EV_MESSAGE => :message,
      Cimpl::EV_PMESSAGE => :pmessage,
      Cimpl::EV_SMESSAGE => :smessage,
      Cimpl::EV_GAP => :gap
    }.freeze

    attr_reader :pattern, :channel, :data
    alias message data
    alias payload data

    # A message keeps only the instance variables it needs (@channel and
    # @data; @kind when not :message, @pattern for :pmessage, the gap fields
    # for a gap): a subscriber draining a backlog makes one per message. The
    # Subscriber builds them in C (Cimpl.sub_drain) with frozen Strings.
    def initialize(kind, channel = nil, data = nil, pattern: nil, gap_start_ms: 0,
                   gap_end_ms: 0, reconnects: 0)
      @channel = channel
      @data = data
      @kind = kind unless kind == :message
      @pattern = pattern unless pattern.nil?
      return if gap_start_ms.zero? && gap_end_ms.zero? && reconnects.zero?
      @gap_start_ms = gap_start_ms
      @gap_end_ms = gap_end_ms
      @reconnects = reconnects
    end

    # From the C glue's [kind, pattern, channel, data, gap_start_ms,
    # gap_end_ms, reconnects].
    def self.from_event(ev, enc)
      kind, pattern, channel, data, gap_start, gap_end, reconnects = ev
      if enc
        pattern&.force_encoding(enc)
        channel&.force_encoding(enc)
        data&.force_encoding(enc)
      end
      new(KINDS.fetch(kind, :unknown), channel, data, pattern: pattern,
          gap_start_ms: gap_start, gap_end_ms: gap_end, reconnects: reconnects)
    end

    def kind
      @kind || :message
    end

    def gap_start_ms
      @gap_start_ms || 0
    end

    def gap_end_ms
      @gap_end_ms || 0
    end

    def reconnects
      @reconnects || 0
    end

    def gap?
      @kind == :gap
    end

    # For a gap: when the link was last known good / every subscription was
    # back, as Times; nil for other kinds.
    def gap_start
      gap? ? Time.at(gap_start_ms / 1000r) : nil
    end

    def gap_end
      gap? ? Time.at(gap_end_ms / 1000r) : nil
    end

    # For a gap: how long messages may have been missed, in seconds.
    def gap_duration
      gap? ? (gap_end_ms - gap_start_ms) / 1000.0 : nil
    end

    # The parsed keyspace notification (Reactis::KeyEvent), or nil when the
    # message is not one (parsed once, on first use).
    def key_event
      return @key_event if defined?(@key_event)
      @key_event = (KeyEvent.parse(@channel, @data || "") if !gap? && @channel&.b&.start_with?("__key"))
    end

    def ==(other)
      other.is_a?(Message) && to_a == other.to_a
    end
    alias eql? ==

    def hash
      to_a.hash
    end

    def to_a
      [kind, @pattern, @channel, @data, gap_start_ms, gap_end_ms, reconnects]
    end

    def inspect
      case kind
      when :gap
        "#<Reactis::Message gap #{gap_end_ms - gap_start_ms} ms, #{reconnects} reconnects>"
      when :pmessage
        "#<Reactis::Message pmessage #{@pattern.inspect} #{@channel.inspect} #{@data.inspect}>"
      else
        "#<Reactis::Message #{kind} #{@channel.inspect} #{@data.inspect}>"
      end
    end
    alias to_s inspect
  end
end
