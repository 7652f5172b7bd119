# frozen_string_literal: true

module Reactis
  # One parsed keyspace notification. Redis publishes key events on two
  # kinds of channel (when notify-keyspace-events allows it):
  #
  #   __keyspace@<db>__:<key>     message: the event name ("expired")
  #   __keyevent@<db>__:<event>   message: the key
  #
  # Parsing is done by the C core, binary-safe and strict: anything that does
  # not have exactly this shape is not a key event (nil), never a misparse.
  #
  # Remember that "expired" fires when Redis deletes the key, which can lag
  # far behind its TTL; that FLUSHDB emits no events; and that pub/sub is
  # at-most-once. Use notifications as hints, not as the source of truth.
  #
  # Attributes: space (:keyspace or :keyevent), db (Integer), event (String,
  # e.g. "expired"; names this version does not know are kept as they came)
  # and key (a binary String: keys are binary).
  KeyEvent = Struct.new(:space, :db, :event, :key) do
    # Parses a notification's channel and message; nil when the channel is
    # not a keyspace or keyevent channel.
    def self.parse(channel, message)
      parsed = Cimpl.keyspace_parse(Internal.bytes(channel, "channel"),
                                    Internal.bytes(message, "message"))
      return nil if parsed.nil?
      space, db, _type, event, key = parsed
      new(space == Cimpl::SPACE_KEYSPACE ? :keyspace : :keyevent, db,
          event.force_encoding(Encoding::UTF_8).freeze, key.freeze).freeze
    end

    # True when the event is one Redis 7 documents.
    def known?
      Cimpl.key_event_type_of(event) != Cimpl::KEV_OTHER
    end

    # The event name as a Symbol (:expired, :set, :"xgroup-create").
    def event_name
      event.to_sym
    end

    # The channel this event came on (for re-publishing or tests), binary.
    def channel
      if space == :keyspace
        "__keyspace@#{db}__:".b << key
      else
        "__keyevent@#{db}__:#{event}".b
      end
    end

    def inspect
      "#<Reactis::KeyEvent #{space} db=#{db} #{event} #{key.inspect}>"
    end
  end
end
